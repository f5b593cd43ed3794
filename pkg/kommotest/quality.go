package kommotest

// SetFieldValue sets a lead's custom field as a person editing the deal
// card would.
func (s *Server) SetFieldValue(leadID, fieldID int64, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.acct.leadByID[leadID]
	if l == nil {
		panic("kommotest: SetFieldValue on an unknown lead")
	}
	if l.fields == nil {
		l.fields = map[int64]string{}
	}
	l.fields[fieldID] = value
}

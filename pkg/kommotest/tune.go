package kommotest

import "time"

// SetRateLimits changes the REST and Chats API limits (requests in any
// 1-second window; negative = none) of a running fake, so a benchmark can
// set an account up fast and then measure at Kommo's 7 per second.
func (s *Server) SetRateLimits(rest, chats float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.RESTRateLimit, s.opts.ChatsRateLimit = rest, chats
}

// SetLatency changes the latency added to every Kommo and Chats API request
// and to every LLM completion. The handlers read it after taking the
// server's lock, so it takes effect for the requests that arrive after.
func (s *Server) SetLatency(api, llm time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Latency, s.opts.LLMLatency = api, llm
}

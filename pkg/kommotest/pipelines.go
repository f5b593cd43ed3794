package kommotest

import (
	"fmt"
	"net/http"
)

// listPipelines: GET /api/v4/leads/pipelines
// (developers.kommo.com/reference/leads-pipelines-and-stages). The account
// has one pipeline: its open stages, then the system stages 142 and 143.
func (s *Server) listPipelines(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.PipelineCalls++
	s.mu.Unlock()
	names := []string{"First contact", "Negotiation", "Proposal sent", "Decision", "Contract", "Closed - won", "Closed - lost"}
	ids := append(append([]int64(nil), openStatuses...), statusWon, statusLost)
	statuses := make([]any, 0, len(ids))
	for i, id := range ids {
		statuses = append(statuses, map[string]any{
			"id": id, "name": names[i%len(names)], "sort": (i + 1) * 10, "is_editable": id != statusWon && id != statusLost,
			"pipeline_id": pipelineID, "color": "#99ccff", "type": 0, "account_id": accountID,
			"_links": map[string]any{"self": s.href(fmt.Sprintf("/api/v4/leads/pipelines/%d/statuses/%d", pipelineID, id))},
		})
	}
	writeJSON(w, http.StatusOK, halJSON, map[string]any{
		"_total_items": 1,
		"_links":       map[string]any{"self": s.href("/api/v4/leads/pipelines")},
		"_embedded": map[string]any{"pipelines": []any{map[string]any{
			"id": pipelineID, "name": "Sales", "sort": 1, "is_main": true, "is_unsorted_on": false, "is_archive": false,
			"account_id": accountID, "_links": map[string]any{"self": s.href(fmt.Sprintf("/api/v4/leads/pipelines/%d", pipelineID))},
			"_embedded": map[string]any{"statuses": statuses},
		}}},
	})
}

package kommo

import (
	"context"
	"net/http"
)

// Pipeline is a leads pipeline with its stages (statuses). Every pipeline
// has the system stages 142 (won) and 143 (lost).
type Pipeline struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Embedded struct {
		Statuses []Status `json:"statuses"`
	} `json:"_embedded"`
}

// Status is a stage of a pipeline.
type Status struct {
	ID         int64  `json:"id"`
	Name       string `json:"name"`
	PipelineID int64  `json:"pipeline_id"`
	Type       int    `json:"type"` // 1: the unsorted (incoming leads) stage
}

// Pipelines returns the account's leads pipelines with their stages (at
// most 50 pipelines: the list is not paged).
//
// https://developers.kommo.com/reference/leads-pipelines-and-stages
func (c *Client) Pipelines(ctx context.Context) ([]Pipeline, error) {
	var page struct {
		Embedded struct {
			Pipelines []Pipeline `json:"pipelines"`
		} `json:"_embedded"`
	}
	status, err := c.do(ctx, http.MethodGet, c.endpoint("/api/v4/leads/pipelines", nil), nil, idempotent, &page)
	if err != nil || status == http.StatusNoContent {
		return nil, err
	}
	return page.Embedded.Pipelines, nil
}

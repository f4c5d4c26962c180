// Package webhook holds Embargo's admission handlers. They are thin: decode the object, ask the
// scan engine (through the Engine interface) for each image's record, let internal/decision
// judge, and phrase the Decision as an AdmissionResponse.
package webhook

import (
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/embargo-dev/embargo/internal/decision"
	"github.com/embargo-dev/embargo/internal/kinds"
)

// workload is the part of an admitted object the decision needs.
type workload struct {
	Name   string
	Labels map[string]string
	Spec   corev1.PodSpec
}

// decodeWorkload reads the object of kind from raw JSON. It walks to the pod spec through raw
// messages and decodes only the metadata and the spec: the admission hot path.
func decodeWorkload(kind string, raw []byte) (*workload, error) {
	k, ok := kinds.Lookup(kind)
	path := k.PodSpecPath
	if !ok {
		return nil, fmt.Errorf("kind %s carries no pod template Embargo knows", kind)
	}
	var obj struct {
		Metadata struct {
			Name         string            `json:"name"`
			GenerateName string            `json:"generateName"`
			Labels       map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", kind, err)
	}
	w := &workload{Name: obj.Metadata.Name, Labels: obj.Metadata.Labels}
	if w.Name == "" {
		w.Name = obj.Metadata.GenerateName
	}
	cur := obj.Spec
	for _, p := range path[1:] {
		if len(cur) == 0 || string(cur) == "null" {
			return w, nil // no template (yet): nothing to check
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(cur, &m); err != nil {
			return nil, fmt.Errorf("decoding %s: %s: %w", kind, p, err)
		}
		cur = m[p]
	}
	if len(cur) == 0 || string(cur) == "null" {
		return w, nil
	}
	if err := json.Unmarshal(cur, &w.Spec); err != nil {
		return nil, fmt.Errorf("decoding the pod spec of %s: %w", kind, err)
	}
	return w, nil
}

// images returns the distinct images of refs in order.
func images(refs []decision.Container) []string {
	var out []string
	for _, r := range refs {
		if r.Image != "" && !slices.Contains(out, r.Image) {
			out = append(out, r.Image)
		}
	}
	return out
}

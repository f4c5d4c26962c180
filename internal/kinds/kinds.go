// Package kinds is the one table of the kinds Embargo judges: what admission decodes, what
// the audit follows a pod's owners up to, and what a PolicyReport names.
package kinds

import (
	"slices"
	"strings"
)

// Kind is a kind that carries a pod spec.
type Kind struct {
	Kind       string
	APIVersion string
	// PodSpecPath is where the object keeps its PodSpec.
	PodSpecPath []string
}

// Group is the kind's API group ("" for core).
func (k Kind) Group() string {
	if group, _, ok := strings.Cut(k.APIVersion, "/"); ok {
		return group
	}
	return ""
}

var template = []string{"spec", "template", "spec"}

// All are Pod and the built-in workloads with a pod template.
var All = []Kind{
	{"Pod", "v1", []string{"spec"}},
	{"ReplicationController", "v1", template},
	{"ReplicaSet", "apps/v1", template},
	{"Deployment", "apps/v1", template},
	{"StatefulSet", "apps/v1", template},
	{"DaemonSet", "apps/v1", template},
	{"Job", "batch/v1", template},
	{"CronJob", "batch/v1", []string{"spec", "jobTemplate", "spec", "template", "spec"}},
}

// Lookup returns the entry of kind.
func Lookup(kind string) (Kind, bool) {
	i := slices.IndexFunc(All, func(k Kind) bool { return k.Kind == kind })
	if i < 0 {
		return Kind{}, false
	}
	return All[i], true
}

// IsOwner reports whether an owner reference of group and kind is a workload to follow up from
// a pod (every kind but Pod).
func IsOwner(group, kind string) bool {
	k, ok := Lookup(kind)
	return ok && kind != "Pod" && k.Group() == group
}

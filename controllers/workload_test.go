package controllers

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// Builders for owner chains.

func objMeta(name, uid string, owner client.Object, ownerKind, ownerAPI string) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(uid)}
	if owner != nil {
		m.OwnerReferences = []metav1.OwnerReference{{APIVersion: ownerAPI, Kind: ownerKind, Name: owner.GetName(), UID: owner.GetUID(), Controller: new(true)}}
	}
	return m
}

func podOwnedBy(name string, owner client.Object, kind, api string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: objMeta(name, "pod-"+name, owner, kind, api)}
}

func TestOwnerWalk(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	deploy := &appsv1.Deployment{ObjectMeta: objMeta("web", "u-deploy", nil, "", "")}
	rs := &appsv1.ReplicaSet{ObjectMeta: objMeta("web-7d9", "u-rs", deploy, "Deployment", "apps/v1")}
	orphanRS := &appsv1.ReplicaSet{ObjectMeta: objMeta("lone-5f", "u-lone", nil, "", "")}
	cron := &batchv1.CronJob{ObjectMeta: objMeta("nightly", "u-cron", nil, "", "")}
	job := &batchv1.Job{ObjectMeta: objMeta("nightly-290", "u-job", cron, "CronJob", "batch/v1")}
	sts := &appsv1.StatefulSet{ObjectMeta: objMeta("db", "u-sts", nil, "", "")}
	ds := &appsv1.DaemonSet{ObjectMeta: objMeta("agent", "u-ds", nil, "", "")}
	rc := &corev1.ReplicationController{ObjectMeta: objMeta("legacy", "u-rc", nil, "", "")}
	// a ReplicaSet owned by a kind Embargo does not know (an Argo Rollout)
	rolloutRS := &appsv1.ReplicaSet{ObjectMeta: objMeta("canary-1", "u-canary", &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "canary", UID: "u-rollout"}}, "Rollout", "argoproj.io/v1alpha1")}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(deploy, rs, orphanRS, cron, job, sts, ds, rc, rolloutRS).Build()

	ghost := &appsv1.ReplicaSet{ObjectMeta: objMeta("gone", "u-gone", nil, "", "")}
	namesake := &appsv1.ReplicaSet{ObjectMeta: objMeta("web-7d9", "u-old-rs", nil, "", "")}
	tests := map[string]struct {
		pod      *corev1.Pod
		wantKind string
		wantName string
	}{
		"deployment":             {podOwnedBy("web-7d9-x", rs, "ReplicaSet", "apps/v1"), "Deployment", "web"},
		"cronjob":                {podOwnedBy("nightly-290-y", job, "Job", "batch/v1"), "CronJob", "nightly"},
		"statefulset":            {podOwnedBy("db-0", sts, "StatefulSet", "apps/v1"), "StatefulSet", "db"},
		"daemonset":              {podOwnedBy("agent-z", ds, "DaemonSet", "apps/v1"), "DaemonSet", "agent"},
		"replicationcontroller":  {podOwnedBy("legacy-q", rc, "ReplicationController", "v1"), "ReplicationController", "legacy"},
		"bare replicaset":        {podOwnedBy("lone-5f-a", orphanRS, "ReplicaSet", "apps/v1"), "ReplicaSet", "lone-5f"},
		"bare pod":               {podOwnedBy("solo", nil, "", ""), "Pod", "solo"},
		"owner not readable":     {podOwnedBy("orphan", ghost, "ReplicaSet", "apps/v1"), "Pod", "orphan"},
		"owner replaced by name": {podOwnedBy("stale", namesake, "ReplicaSet", "apps/v1"), "Pod", "stale"},
		"unknown owner kind":     {podOwnedBy("canary-1-b", rolloutRS, "ReplicaSet", "apps/v1"), "ReplicaSet", "canary-1"},
		"foreign controller":     {podOwnedBy("custom", &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "x", UID: "u-x"}}, "Thing", "example.com/v1"), "Pod", "custom"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := newOwnerWalker(c)
			got := w.top(context.Background(), tc.pod)
			if got.Kind != tc.wantKind || got.Name != tc.wantName {
				t.Errorf("top = %s/%s, want %s/%s", got.Kind, got.Name, tc.wantKind, tc.wantName)
			}
			if got.Object == nil || got.Object.GetName() != tc.wantName {
				t.Errorf("event object = %v", got.Object)
			}
			if gvk := got.Object.GetObjectKind().GroupVersionKind(); tc.wantKind != "Pod" && gvk.Kind != tc.wantKind {
				t.Errorf("event object kind %q, want %q (the recorder needs it)", gvk.Kind, tc.wantKind)
			}
		})
	}
}

// countingReader counts Gets, to show the walk is memoized per owner.
type countingReader struct {
	client.Reader
	gets int
}

func (r *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.gets++
	return r.Reader.Get(ctx, key, obj, opts...)
}

func TestOwnerWalkMemo(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	deploy := &appsv1.Deployment{ObjectMeta: objMeta("web", "u-deploy", nil, "", "")}
	rs := &appsv1.ReplicaSet{ObjectMeta: objMeta("web-7d9", "u-rs", deploy, "Deployment", "apps/v1")}
	r := &countingReader{Reader: fake.NewClientBuilder().WithScheme(scheme).WithObjects(deploy, rs).Build()}
	w := newOwnerWalker(r)
	for i := range 100 {
		if got := w.top(context.Background(), podOwnedBy("p"+string(rune('a'+i%26)), rs, "ReplicaSet", "apps/v1")); got.Name != "web" {
			t.Fatalf("top = %s", got.Name)
		}
	}
	if r.gets != 2 {
		t.Errorf("100 pods of one ReplicaSet: %d owner reads, want 2", r.gets)
	}
}

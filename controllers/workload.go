package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/embargo-dev/embargo/internal/kinds"
)

// maxOwnerDepth bounds the walk (Pod→ReplicaSet→Deployment is two).
const maxOwnerDepth = 4

// WorkloadRef is the top workload a pod belongs to; a bare pod is its own.
type WorkloadRef struct {
	// APIVersion is the workload's group/version, as its owner reference gives it ("v1" for a Pod).
	APIVersion string
	Kind       string
	Name       string
	UID        types.UID
	// Object receives the workload's events.
	Object client.Object
}

// OwnerWalker follows controller owner references through a (cached) reader, remembering each
// owner's top so that a thousand pods of one ReplicaSet cost one walk. Only metadata is read:
// the cache keeps no workload specs. Exported for the integration tests, which walk real
// owner chains on a real API server; one walker is meant for one audit (it is not safe for
// concurrent use, and its memo is never invalidated).
type OwnerWalker struct {
	reader client.Reader
	memo   map[types.UID]WorkloadRef
}

// NewOwnerWalker returns a walker that reads owners' metadata through r.
func NewOwnerWalker(r client.Reader) *OwnerWalker {
	return &OwnerWalker{reader: r, memo: map[types.UID]WorkloadRef{}}
}

// Top returns pod's top workload. An owner of an unknown kind, or one that cannot be read (not
// found, forbidden, replaced by a namesake), ends the walk at the last known object.
func (w *OwnerWalker) Top(ctx context.Context, pod *corev1.Pod) WorkloadRef {
	cur := WorkloadRef{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID, Object: pod}
	refs := pod.OwnerReferences
	var chain []types.UID
	for range maxOwnerDepth {
		ref := controllerOf(refs)
		if ref == nil {
			break
		}
		if known, ok := w.memo[ref.UID]; ok {
			cur = known
			break
		}
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err != nil || !kinds.IsOwner(gv.Group, ref.Kind) {
			break
		}
		gvk := gv.WithKind(ref.Kind)
		obj := &metav1.PartialObjectMetadata{}
		obj.SetGroupVersionKind(gvk)
		if err := w.reader.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: ref.Name}, obj); err != nil || obj.UID != ref.UID {
			break
		}
		obj.SetGroupVersionKind(gvk) // the event recorder needs the kind
		cur = WorkloadRef{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name, UID: ref.UID, Object: obj}
		chain = append(chain, ref.UID)
		refs = obj.OwnerReferences
	}
	for _, uid := range chain {
		w.memo[uid] = cur
	}
	return cur
}

func controllerOf(refs []metav1.OwnerReference) *metav1.OwnerReference {
	for i := range refs {
		if refs[i].Controller != nil && *refs[i].Controller {
			return &refs[i]
		}
	}
	return nil
}

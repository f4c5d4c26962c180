package devcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// SimulateRollout stands in for kube-controller-manager, which this cluster lacks: it creates
// the ReplicaSet of Deployment namespace/name and its pods, with the owner references the
// controllers would set, through kubectl (so admission sees them). The pods stay Pending:
// there is no scheduler or kubelet. It returns the pod names.
func (c *Cluster) SimulateRollout(ctx context.Context, namespace, name string) ([]string, error) {
	r := c.Kubectl(ctx, "", "get", "deployment", name, "-n", namespace, "-o", "json")
	if r.ExitCode != 0 {
		return nil, fmt.Errorf("kubectl get deployment %s/%s: %s", namespace, name, r)
	}
	var d appsv1.Deployment
	if err := json.Unmarshal([]byte(r.Stdout), &d); err != nil {
		return nil, err
	}
	tmpl, err := json.Marshal(d.Spec.Template)
	if err != nil {
		return nil, err
	}
	h := fnv.New32a()
	_, _ = h.Write(tmpl)
	hash := fmt.Sprintf("%x", h.Sum32())

	labels := maps.Clone(d.Spec.Template.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	rs := appsv1.ReplicaSet{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name + "-" + hash, Namespace: namespace, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{owner("apps/v1", "Deployment", d.Name, d.UID)},
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: d.Spec.Template.Spec},
		},
	}
	uid, err := c.create(ctx, rs)
	if err != nil {
		return nil, err
	}
	var pods []string
	for i := range replicas {
		pod := corev1.Pod{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("%s-%05x", rs.Name, i+0x1b2c3), Namespace: namespace, Labels: labels,
				OwnerReferences: []metav1.OwnerReference{owner("apps/v1", "ReplicaSet", rs.Name, uid)},
			},
			Spec: d.Spec.Template.Spec,
		}
		if _, err := c.create(ctx, pod); err != nil {
			return nil, err
		}
		pods = append(pods, pod.Name)
	}
	return pods, nil
}

func (c *Cluster) create(ctx context.Context, obj any) (types.UID, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return "", err
	}
	r := c.Kubectl(ctx, string(b), "create", "-f", "-", "-o", "jsonpath={.metadata.uid}")
	if r.ExitCode != 0 {
		return "", fmt.Errorf("kubectl create: %s", r)
	}
	return types.UID(r.Stdout), nil
}

func owner(apiVersion, kind, name string, uid types.UID) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: &yes, BlockOwnerDeletion: &yes}
}

package integration

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Builders for test objects.

func podSpec(images ...string) corev1.PodSpec {
	spec := corev1.PodSpec{}
	for i, img := range images {
		spec.Containers = append(spec.Containers, corev1.Container{Name: containerName(i), Image: img})
	}
	return spec
}

func containerName(i int) string {
	if i == 0 {
		return "app"
	}
	return "sidecar" + string(rune('0'+i))
}

func template(labels map[string]string, images ...string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec(images...)}
}

func newPod(ns, name string, images ...string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: podSpec(images...)}
}

var appLabels = map[string]string{"app": "web"}

func selector() *metav1.LabelSelector { return &metav1.LabelSelector{MatchLabels: appLabels} }

// workloads builds one object of every admitted kind running image.
var workloads = map[string]func(ns, name, image string) client.Object{
	"Pod": func(ns, name, image string) client.Object { return newPod(ns, name, image) },
	"Deployment": func(ns, name, image string) client.Object {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: appsv1.DeploymentSpec{Selector: selector(), Template: template(appLabels, image)}}
	},
	"StatefulSet": func(ns, name, image string) client.Object {
		return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: appsv1.StatefulSetSpec{Selector: selector(), Template: template(appLabels, image)}}
	},
	"DaemonSet": func(ns, name, image string) client.Object {
		return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: appsv1.DaemonSetSpec{Selector: selector(), Template: template(appLabels, image)}}
	},
	"ReplicaSet": func(ns, name, image string) client.Object {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: appsv1.ReplicaSetSpec{Selector: selector(), Template: template(appLabels, image)}}
	},
	"ReplicationController": func(ns, name, image string) client.Object {
		t := template(appLabels, image)
		return &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ReplicationControllerSpec{Selector: appLabels, Template: &t}}
	},
	"Job": func(ns, name, image string) client.Object {
		t := template(nil, image)
		t.Spec.RestartPolicy = corev1.RestartPolicyNever
		return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: batchv1.JobSpec{Template: t}}
	},
	"CronJob": func(ns, name, image string) client.Object {
		t := template(nil, image)
		t.Spec.RestartPolicy = corev1.RestartPolicyNever
		return &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: batchv1.CronJobSpec{Schedule: "0 * * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: t}}}}
	},
}

package devcluster

import (
	"bufio"
	"errors"
	"io"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Object is one document of a multi-document manifest.
type Object struct {
	APIVersion, Kind, Name, Namespace string
	// YAML is the document as written.
	YAML string
	// Map is the document decoded.
	Map map[string]any
}

// SplitManifests splits a multi-document YAML stream (helm template, kubectl kustomize) into
// objects, skipping empty documents.
func SplitManifests(s string) ([]Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(s)))
	var out []Object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		o := Object{YAML: string(doc), Map: m}
		o.APIVersion, _ = m["apiVersion"].(string)
		o.Kind, _ = m["kind"].(string)
		if md, ok := m["metadata"].(map[string]any); ok {
			o.Name, _ = md["name"].(string)
			o.Namespace, _ = md["namespace"].(string)
		}
		out = append(out, o)
	}
}

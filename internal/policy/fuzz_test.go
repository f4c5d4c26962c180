package policy

import (
	"testing"

	"github.com/embargo-dev/embargo/internal/catalog"
)

// FuzzDecode: any bytes either fail to decode with an error or yield policies that compile or
// fail to compile with an error; nothing panics.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		"apiVersion: embargo.dev/v1alpha1\nkind: VendorPolicy\nmetadata: {name: a}\nspec: {vendors: [{catalog: kaspersky}]}\n",
		"---\n# c\n---\napiVersion: embargo.dev/v1alpha1\nkind: VendorPolicy\nmetadata: {name: b}\nspec:\n  action: Warn\n  vendors:\n  - name: X\n    rules: {suppliers: ['X( Inc)?'], paths: ['/opt/x/**'], purls: ['pkg:npm/%40x/*']}\n",
		`{"apiVersion":"embargo.dev/v1alpha1","kind":"VendorPolicy","metadata":{"name":"c"},"spec":{"vendors":[{"catalog":"huawei"}],"rollout":[{"action":"Deny","from":"2017-12-12T00:00:00Z"}]}}`,
		"kind: VendorPolicy\n",
		"\x00\xff",
	} {
		f.Add([]byte(seed))
	}
	cat := catalog.Default()
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := Decode(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if len(ps) == 0 {
			t.Fatal("no policies and no error")
		}
		for _, p := range ps {
			c, err := Compile(p, cat)
			if err == nil && len(c.Vendors) == 0 {
				t.Fatal("compiled a policy with no vendors")
			}
		}
	})
}

package main

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// configKeys lists the dotted YAML keys of t's fields, recursively.
func configKeys(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		key := prefix + tag
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(Duration(0)) {
			keys = append(keys, configKeys(ft, key+".")...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}

// readmeKeys lists the dotted keys of the YAML block under the README's
// "Configuration reference" heading.
func readmeKeys(t *testing.T) []string {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i := strings.Index(s, "## Configuration reference")
	if i < 0 {
		t.Fatal(`README.md has no "## Configuration reference" section`)
	}
	s = s[i:]
	start := strings.Index(s, "```yaml\n")
	if start < 0 {
		t.Fatal("no ```yaml block in the configuration reference")
	}
	s = s[start+len("```yaml\n"):]
	s = s[:strings.Index(s, "```")]
	keyRE := regexp.MustCompile(`^( *)([a-z_]+):`)
	var keys []string
	var stack []string // parent keys by indent level (2 spaces)
	for _, line := range strings.Split(s, "\n") {
		m := keyRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		depth := len(m[1]) / 2
		if depth > len(stack) {
			t.Fatalf("bad indentation in README config block: %q", line)
		}
		stack = append(stack[:depth], m[2])
		keys = append(keys, strings.Join(stack, "."))
	}
	// Keep only leaves: drop keys that are a prefix of another.
	var leaves []string
	for _, k := range keys {
		leaf := true
		for _, o := range keys {
			if strings.HasPrefix(o, k+".") {
				leaf = false
				break
			}
		}
		if leaf {
			leaves = append(leaves, k)
		}
	}
	return leaves
}

// TestReadmeConfigReference fails when the README's configuration
// reference and the Config type disagree.
func TestReadmeConfigReference(t *testing.T) {
	want := configKeys(reflect.TypeOf(Config{}), "")
	got := readmeKeys(t)
	for _, k := range want {
		if !slices.Contains(got, k) {
			t.Errorf("README configuration reference lacks key %s", k)
		}
	}
	for _, k := range got {
		if !slices.Contains(want, k) {
			t.Errorf("README configuration reference documents %s, which Config does not have", k)
		}
	}
}

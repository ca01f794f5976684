package config

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ParseDuration reads a duration of the config file: time.ParseDuration's
// syntax ("30s", "5m", "4h", "1h30m") plus whole days ("2d").
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && strconv.Itoa(n) == days {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: use a number and a unit, such as 30s, 5m, 4h or 2d", s)
	}
	return v, nil
}

// Decode decodes the YAML document b into v, a pointer to a struct made of
// the packages' Config types, with the config file's two rules for every
// package, kept here once: an unknown key is an error (it is nearly always a
// typo), and a time.Duration is written as ParseDuration reads it (so the
// packages keep plain time.Duration fields with yaml tags). All problems are
// returned together as one *yaml.TypeError, in line order.
func Decode(b []byte, v any) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err
	}
	if len(doc.Content) == 0 {
		return nil // an empty file
	}
	paths := map[int]string{}
	problems := prepare(&doc, reflect.TypeOf(v), "", paths)
	if err := doc.Decode(v); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return err
		}
		for _, e := range te.Errors {
			problems = append(problems, readable(e, paths))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	slices.SortStableFunc(problems, func(a, b string) int { return lineOf(a) - lineOf(b) })
	return &yaml.TypeError{Errors: problems}
}

// lineOf is N of a "line N: ..." problem (0 without one).
func lineOf(problem string) int {
	var n int
	_, _ = fmt.Sscanf(problem, "line %d:", &n)
	return n
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
)

// prepare walks node n, found at path (the key as the README writes it,
// "orgs[0].credits_per_quarter") and about to be decoded into a value of
// type t, and returns its unknown keys and bad durations, each naming its
// key; paths gets the key of every line that holds a value, for the
// decoder's own problems. Every scalar that lands in a time.Duration is
// rewritten in Go's syntax, which the decoder reads; a bad one is made
// zero, so that decoding goes on to report the other problems. Types that
// read their own node (yaml.Unmarshaler) check it themselves.
func prepare(n *yaml.Node, t reflect.Type, path string, paths map[int]string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n == nil || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	if path != "" {
		if _, ok := paths[n.Line]; !ok {
			paths[n.Line] = path
		}
	}
	var problems []string
	switch {
	case n.Kind == yaml.AliasNode:
		return prepare(n.Alias, t, path, paths)
	case n.Kind == yaml.DocumentNode:
		for _, c := range n.Content {
			problems = append(problems, prepare(c, t, path, paths)...)
		}
	case t == durationType:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			if n.Kind == yaml.ScalarNode {
				n.Tag, n.Value = "!!str", "0s"
			}
			return []string{fmt.Sprintf("line %d: %s: a duration must be a string such as 30s, 5m, 4h or 2d", n.Line, path)}
		}
		d, err := ParseDuration(n.Value)
		if err != nil {
			n.Value = "0s"
			return []string{fmt.Sprintf("line %d: %s: %v", n.Line, path, err)}
		}
		n.Value = d.String()
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			at := join(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				p := fmt.Sprintf("line %d: %s is not a setting", k.Line, at)
				if near := nearest(k.Value, slices.Collect(maps.Keys(fields))); near != "" {
					p += " (did you mean " + join(path, near) + "?)"
				}
				problems = append(problems, p)
				continue
			}
			problems = append(problems, prepare(n.Content[i+1], ft, at, paths)...)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			problems = append(problems, prepare(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), paths)...)
		}
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			problems = append(problems, prepare(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), paths)...)
		}
	}
	return problems
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// nearest is the one of keys a typo of key most likely meant: at most two
// letters added, dropped or changed (none when two are as near).
func nearest(key string, keys []string) string {
	best, bestD, tie := "", 3, false
	for _, k := range keys {
		switch d := editDistance(key, k); {
		case d < bestD:
			best, bestD, tie = k, d, false
		case d == bestD:
			tie = true
		}
	}
	if tie {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// decodeProblem is the decoder's "line N: cannot unmarshal !!str `lots`
// into int".
var decodeProblem = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+) `(.*)` into (.+)$")

// readable rewrites a problem of the decoder in words, naming its key.
func readable(problem string, paths map[int]string) string {
	m := decodeProblem.FindStringSubmatch(problem)
	if m == nil {
		return problem
	}
	line, _ := strconv.Atoi(m[1])
	what := "a value of another kind"
	switch into := m[4]; {
	case strings.HasPrefix(into, "int"), strings.HasPrefix(into, "uint"):
		what = "a whole number"
	case strings.HasPrefix(into, "float"):
		what = "a number"
	case into == "bool":
		what = "true or false"
	case into == "string":
		what = "text"
	case strings.HasPrefix(into, "[]"):
		what = "a list"
	case strings.HasPrefix(into, "map["), strings.Contains(into, "."):
		what = "a block of settings"
	}
	key := paths[line]
	if key == "" {
		return fmt.Sprintf("line %d: %q must be %s", line, m[3], what)
	}
	return fmt.Sprintf("line %d: %s: %q must be %s", line, key, m[3], what)
}

// yamlFields maps the keys of struct type t, as the decoder reads them (the
// yaml tag's name, else the lower-cased field name; ",inline" structs
// flattened), to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			for k, v := range yamlFields(ft) {
				out[k] = v
			}
			continue
		}
		out[cmp.Or(name, strings.ToLower(f.Name))] = f.Type
	}
	return out
}

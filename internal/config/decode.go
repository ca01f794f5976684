package config

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
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
	problems := prepare(&doc, reflect.TypeOf(v))
	if err := doc.Decode(v); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return err
		}
		problems = append(problems, te.Errors...)
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

// prepare walks node n, about to be decoded into a value of type t, and
// returns its unknown keys and bad durations. Every scalar that lands in a
// time.Duration is rewritten in Go's syntax, which the decoder reads; a bad
// one is made zero, so that decoding goes on to report the other problems.
// Types that read their own node (yaml.Unmarshaler) check it themselves.
func prepare(n *yaml.Node, t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n == nil || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	var problems []string
	switch {
	case n.Kind == yaml.AliasNode:
		return prepare(n.Alias, t)
	case n.Kind == yaml.DocumentNode:
		for _, c := range n.Content {
			problems = append(problems, prepare(c, t)...)
		}
	case t == durationType:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			if n.Kind == yaml.ScalarNode {
				n.Tag, n.Value = "!!str", "0s"
			}
			return []string{fmt.Sprintf("line %d: a duration must be a string such as 30s, 5m, 4h or 2d", n.Line)}
		}
		d, err := ParseDuration(n.Value)
		if err != nil {
			n.Value = "0s"
			return []string{fmt.Sprintf("line %d: %v", n.Line, err)}
		}
		n.Value = d.String()
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				// The decoder's own wording with KnownFields.
				problems = append(problems, fmt.Sprintf("line %d: field %s not found in type %s", k.Line, k.Value, t))
				continue
			}
			problems = append(problems, prepare(n.Content[i+1], ft)...)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			problems = append(problems, prepare(n.Content[i], t.Elem())...)
		}
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && n.Kind == yaml.SequenceNode:
		for _, c := range n.Content {
			problems = append(problems, prepare(c, t.Elem())...)
		}
	}
	return problems
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

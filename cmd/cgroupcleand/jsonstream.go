package main

import (
	"bufio"
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// writeIndentedJSON writes v as json.Encoder with SetIndent("", "  ")
// would, byte for byte, without holding the whole document: structs are
// written field by field and slices element by element, each element
// marshalled on its own. At 10,000 pods the plan's document is tens of MiB,
// and the encoder kept all of it (twice: compact, then indented) in memory.
func writeIndentedJSON(w io.Writer, v any) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	s := jsonStreamer{w: bw}
	if err := s.value(reflect.ValueOf(v), ""); err != nil {
		return err
	}
	bw.WriteByte('\n')
	return bw.Flush()
}

type jsonStreamer struct {
	w       *bufio.Writer
	compact []byte
	ind     bytes.Buffer
}

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// value writes v, whose first line the caller has already indented; prefix
// is the indentation of the lines after it.
func (s *jsonStreamer) value(v reflect.Value, prefix string) error {
	if v.Kind() == reflect.Pointer && !v.IsNil() && !marshals(v.Type()) {
		v = v.Elem()
	}
	switch {
	case marshals(v.Type()):
	case v.Kind() == reflect.Struct && plainStruct(v.Type()):
		return s.object(v, prefix)
	case v.Kind() == reflect.Slice && !v.IsNil() && v.Len() > 0 && v.Type().Elem().Kind() != reflect.Uint8:
		return s.array(v, prefix)
	}
	return s.leaf(v, prefix)
}

// leaf marshals v whole, indented as the encoder would.
func (s *jsonStreamer) leaf(v reflect.Value, prefix string) error {
	b, err := json.Marshal(v.Interface())
	if err != nil {
		return err
	}
	s.ind.Reset()
	if err := json.Indent(&s.ind, b, prefix, "  "); err != nil {
		return err
	}
	_, err = s.w.Write(s.ind.Bytes())
	return err
}

func (s *jsonStreamer) array(v reflect.Value, prefix string) error {
	inner := prefix + "  "
	s.w.WriteString("[\n")
	for i := range v.Len() {
		if i > 0 {
			s.w.WriteString(",\n")
		}
		s.w.WriteString(inner)
		if err := s.leaf(v.Index(i), inner); err != nil {
			return err
		}
	}
	s.w.WriteByte('\n')
	s.w.WriteString(prefix)
	s.w.WriteByte(']')
	return nil
}

func (s *jsonStreamer) object(v reflect.Value, prefix string) error {
	inner := prefix + "  "
	t := v.Type()
	n := 0
	for i := range t.NumField() {
		f := t.Field(i)
		name, omitEmpty, omitZero, ok := jsonField(f)
		fv := v.Field(i)
		if !ok || (omitEmpty && emptyValue(fv)) || (omitZero && zeroValue(fv)) {
			continue
		}
		if n == 0 {
			s.w.WriteString("{\n")
		} else {
			s.w.WriteString(",\n")
		}
		n++
		key, _ := json.Marshal(name)
		s.w.WriteString(inner)
		s.w.Write(key)
		s.w.WriteString(": ")
		if err := s.value(fv, inner); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if n == 0 {
		s.w.WriteString("{}")
		return nil
	}
	s.w.WriteByte('\n')
	s.w.WriteString(prefix)
	s.w.WriteByte('}')
	return nil
}

// marshals reports whether t (or *t) writes its own JSON or text.
func marshals(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return t.Implements(marshalerType) || t.Implements(textMarshalerType) ||
		pt.Implements(marshalerType) || pt.Implements(textMarshalerType)
}

// plainStruct reports whether every exported field of t is one this
// streamer writes as encoding/json does; others make t a leaf.
func plainStruct(t reflect.Type) bool {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			return false
		}
		if tag := f.Tag.Get("json"); strings.Contains(tag, ",string") || strings.Contains(tag, ",inline") {
			return false
		}
	}
	return true
}

// jsonField is the key and options encoding/json gives field f; ok is
// false for a field it leaves out.
func jsonField(f reflect.StructField) (name string, omitEmpty, omitZero, ok bool) {
	if !f.IsExported() {
		return "", false, false, false
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return "", false, false, false
	}
	name, opts, _ := strings.Cut(tag, ",")
	if name == "" {
		name = f.Name
	}
	for o := range strings.SplitSeq(opts, ",") {
		switch o {
		case "omitempty":
			omitEmpty = true
		case "omitzero":
			omitZero = true
		}
	}
	return name, omitEmpty, omitZero, true
}

// emptyValue is encoding/json's test for omitempty.
func emptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

// zeroValue is encoding/json's test for omitzero: an IsZero method, else
// the zero value.
func zeroValue(v reflect.Value) bool {
	if z, ok := v.Interface().(interface{ IsZero() bool }); ok {
		if v.Kind() == reflect.Pointer && v.IsNil() {
			return true
		}
		return z.IsZero()
	}
	return v.IsZero()
}

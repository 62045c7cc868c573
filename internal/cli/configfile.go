package cli

import (
	"fmt"
	"strconv"
	"strings"
)

// parseConfigFile reads the config file: YAML's flat subset, which is all a
// file whose keys mirror command-line flags needs —
//
//	key: value              # plain, "double-quoted" or 'single-quoted' scalar
//	key: [a, "b c"]         # flow list
//	key:                    # block list
//	  - a
//	  - "b c"
//
// plus comments, blank lines and a leading "---". Anything else (nested
// maps, anchors, multi-line scalars) is an error naming the line. A full YAML
// library would add ~250 KB to a binary that must stay small for firmware
// images, for features a flag file never uses.
func parseConfigFile(data string) (map[string][]string, error) {
	out := map[string][]string{}
	var listKey string // the key whose block list is being read
	for i, raw := range strings.Split(strings.ReplaceAll(data, "\r\n", "\n"), "\n") {
		n := i + 1
		line := strings.TrimRight(stripComment(raw), " \t")
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || (trimmed == "---" && len(out) == 0):
			continue
		case strings.HasPrefix(trimmed, "- ") || trimmed == "-":
			if listKey == "" || !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "-") {
				return nil, fmt.Errorf("line %d: list item without a key above it", n)
			}
			v, err := scalar(strings.TrimSpace(strings.TrimPrefix(trimmed, "-")))
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			out[listKey] = append(out[listKey], v)
			continue
		case line[0] == ' ' || line[0] == '\t':
			return nil, fmt.Errorf("line %d: nested values are not supported (keys mirror flags)", n)
		}
		key, value, ok := strings.Cut(line, ":")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.ContainsAny(key, " \t\"'[]{}") {
			return nil, fmt.Errorf("line %d: want 'key: value'", n)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("line %d: key %q given twice", n, key)
		}
		value = strings.TrimSpace(value)
		listKey = ""
		switch {
		case value == "":
			out[key] = []string{}
			listKey = key
		case strings.HasPrefix(value, "["):
			items, err := flowList(value)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			out[key] = items
		default:
			v, err := scalar(value)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			out[key] = []string{v}
		}
	}
	return out, nil
}

// stripComment removes a # comment that is not inside quotes.
func stripComment(line string) string {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i]
		}
	}
	return line
}

func scalar(s string) (string, error) {
	switch {
	case s == "":
		return "", nil
	case s[0] == '"':
		v, err := strconv.Unquote(s)
		if err != nil {
			return "", fmt.Errorf("bad double-quoted string %s", s)
		}
		return v, nil
	case s[0] == '\'':
		if len(s) < 2 || s[len(s)-1] != '\'' {
			return "", fmt.Errorf("unterminated single-quoted string %s", s)
		}
		inner := s[1 : len(s)-1]
		if strings.Contains(strings.ReplaceAll(inner, "''", ""), "'") {
			return "", fmt.Errorf("bad single-quoted string %s", s)
		}
		return strings.ReplaceAll(inner, "''", "'"), nil
	case strings.ContainsAny(s[:1], "{&*!|>%@`"):
		return "", fmt.Errorf("unsupported YAML value %s", s)
	}
	return s, nil
}

func flowList(s string) ([]string, error) {
	if !strings.HasSuffix(s, "]") {
		return nil, fmt.Errorf("unterminated list %s", s)
	}
	inner := strings.TrimSpace(s[1 : len(s)-1])
	items := []string{}
	for inner != "" {
		var item string
		switch inner[0] {
		case '"', '\'':
			end := closingQuote(inner)
			if end < 0 {
				return nil, fmt.Errorf("unterminated string in list %s", s)
			}
			item, inner = inner[:end+1], strings.TrimSpace(inner[end+1:])
		default:
			end := strings.IndexByte(inner, ',')
			if end < 0 {
				end = len(inner)
			}
			item, inner = strings.TrimSpace(inner[:end]), inner[end:]
		}
		v, err := scalar(item)
		if err != nil {
			return nil, err
		}
		items = append(items, v)
		if inner != "" {
			if inner[0] != ',' {
				return nil, fmt.Errorf("want ',' between list items in %s", s)
			}
			inner = strings.TrimSpace(inner[1:])
		}
	}
	return items, nil
}

func closingQuote(s string) int {
	q := s[0]
	for i := 1; i < len(s); i++ {
		switch {
		case q == '"' && s[i] == '\\':
			i++
		case s[i] == q:
			if q == '\'' && i+1 < len(s) && s[i+1] == '\'' {
				i++
				continue
			}
			return i
		}
	}
	return -1
}

package config

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The README's [loader] table states the defaults an operator gets; the
// embedded default.toml is where they are defined. They must say the same.
func TestReadmeLoaderDefaults(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	rows := loaderTable(t, string(readme))
	require.NotEmpty(t, rows, "README: no [loader] key table")

	text, err := Default().TOML()
	require.NoError(t, err)
	var file map[string]any
	require.NoError(t, toml.Unmarshal(text, &file))
	section, _ := file["loader"].(map[string]any)
	require.NotNil(t, section, "default configuration has no [loader]")

	documented := map[string]bool{}
	for _, row := range rows {
		keys, defaults := backticked(row[0]), splitDefaults(row[1])
		if len(defaults) == 1 {
			for len(defaults) < len(keys) {
				defaults = append(defaults, defaults[0])
			}
		}
		require.Len(t, defaults, len(keys), "README [loader] row %q: one default per key", row[0])
		for i, key := range keys {
			documented[key] = true
			want := strings.Trim(defaults[i], "`")
			if strings.HasPrefix(want, "from ") {
				continue // prose: found at run time
			}
			if want == "empty" {
				want = ""
			}
			v, ok := section[key]
			if !ok {
				assert.Contains(t, []string{"", "0", "false", "0s", "[]"}, want,
					"README says [loader] %s defaults to %q; default.toml leaves it zero", key, want)
				continue
			}
			assert.Equal(t, want, tomlText(v), "README's default of [loader] %s", key)
		}
	}
	for key := range section {
		assert.True(t, documented[key], "[loader] %s has a default but no README row", key)
	}
}

// loaderTable returns the cells (key, default) of the README's [loader] table.
func loaderTable(t *testing.T, readme string) [][2]string {
	_, rest, ok := strings.Cut(readme, "Configuration: the `[loader]` section")
	require.True(t, ok, "README: no loader configuration paragraph")
	_, rest, ok = strings.Cut(rest, "| key | default | meaning |")
	require.True(t, ok, "README: no [loader] key table")
	var rows [][2]string
	for _, line := range strings.Split(rest, "\n")[2:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(line, " | ")
		require.GreaterOrEqual(t, len(cells), 3, "README [loader] row %q", line)
		rows = append(rows, [2]string{strings.TrimPrefix(cells[0], "| "), cells[1]})
	}
	return rows
}

func backticked(s string) []string {
	var out []string
	for i, part := range strings.Split(s, "`") {
		if i%2 == 1 {
			out = append(out, part)
		}
	}
	return out
}

// splitDefaults splits "a, `[x, y]`, b" on the commas outside brackets.
func splitDefaults(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '[':
			depth++
		case ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

func tomlText(v any) string {
	switch v := v.(type) {
	case []any:
		quoted := make([]string, len(v))
		for i, e := range v {
			quoted[i] = fmt.Sprintf("%q", e)
		}
		return "[" + strings.Join(quoted, ", ") + "]"
	default:
		return fmt.Sprint(v)
	}
}

package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// EnvPrefix starts the environment variable of every key:
// kommo.base_url is KOMMO_SUMMARIZER_KOMMO_BASE_URL.
const EnvPrefix = "KOMMO_SUMMARIZER_"

// OpenAIKeyEnv fills llm.api_key when neither the file nor
// KOMMO_SUMMARIZER_LLM_API_KEY sets it, as other OpenAI tools read it.
const OpenAIKeyEnv = "OPENAI_API_KEY"

var envReplacer = strings.NewReplacer(".", "_")

// EnvName returns the environment variable that sets key ("kommo.base_url").
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(envReplacer.Replace(key))
}

// Load reads the YAML file at path ("" = no file), then the environment
// variables in environ (os.Environ() form), onto Default(). It does not call
// Validate.
//
// Precedence, highest first: KOMMO_SUMMARIZER_* variables, the file,
// OPENAI_API_KEY (llm.api_key only), the defaults.
func Load(path string, environ []string) (*Config, error) {
	v := viper.New()
	var fileWarnings []string

	keys := leafKeys()
	def := reflect.ValueOf(Default())
	for _, k := range keys {
		// Every key gets its default, so that viper knows every key:
		// Unmarshal decodes only the keys viper knows of.
		v.SetDefault(k.name, def.FieldByIndex(k.index).Interface())
	}

	if path != "" {
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &Error{Key: path, Problem: "file not found"}
		} else if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is already the Key
			}
			return nil, &Error{Key: path, Problem: oneLine(err.Error())}
		}
		// The file is read on its own first: a section or key left empty
		// ("kommo:" with every line under it commented out) reads as null,
		// and a null section would hide the defaults of all its keys.
		fv := viper.New()
		fv.SetConfigType("yaml")
		if err := fv.ReadConfig(bytes.NewReader(data)); err != nil {
			msg := strings.TrimPrefix(err.Error(), "While parsing config: ")
			return nil, &Error{Key: path, Problem: "invalid YAML: " + oneLine(msg)}
		}
		var set []string
		for _, k := range fv.AllKeys() {
			if fv.Get(k) != nil {
				set = append(set, k)
			}
		}
		if err := checkFileKeys(set, keys, path); err != nil {
			return nil, err
		}
		file := map[string]any{}
		for _, k := range set {
			section, name, _ := strings.Cut(k, ".")
			if file[section] == nil {
				file[section] = map[string]any{}
			}
			file[section].(map[string]any)[name] = fv.Get(k)
		}
		if err := v.MergeConfigMap(file); err != nil {
			return nil, &Error{Key: path, Problem: oneLine(err.Error())}
		}
		if w := exposedSecrets(path, fv); w != "" {
			fileWarnings = append(fileWarnings, w)
		}
	}

	// viper's AutomaticEnv reads the process environment; the environment is
	// an argument here so that callers and tests decide what it holds.
	// Applying it with Set gives the same precedence (above the file).
	env := envMap(environ)
	fromEnv := map[string]string{}
	for _, k := range keys {
		name := EnvName(k.name)
		if val := env[name]; val != "" {
			v.Set(k.name, val)
			fromEnv[k.name] = name
		}
	}
	if v.GetString("llm.api_key") == "" && env[OpenAIKeyEnv] != "" {
		v.Set("llm.api_key", env[OpenAIKeyEnv])
		fromEnv["llm.api_key"] = OpenAIKeyEnv
	}

	var c Config
	hooks := viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		strictDurationHook, strictNumberHook, mapstructure.StringToTimeDurationHookFunc()))
	if err := v.UnmarshalExact(&c, hooks); err != nil {
		return nil, decodeError(err, v, keys, fromEnv, path)
	}
	c.fileWarnings = fileWarnings
	return &c, nil
}

// secretKeys are the keys whose values give access to the account, the chat
// history or the LLM bill.
var secretKeys = []string{
	"kommo.client_secret", "kommo.access_token", "kommo.refresh_token", "kommo.long_lived_token",
	"chats.channel_secret", "llm.api_key",
}

// exposedSecrets returns a warning when the file at path, read into file,
// gives secret keys a value and its group or other users may read it. Windows has no such mode bits.
func exposedSecrets(path string, file *viper.Viper) string {
	if runtime.GOOS == "windows" {
		return ""
	}
	var secrets []string
	for _, k := range secretKeys {
		if file.GetString(k) != "" {
			secrets = append(secrets, k)
		}
	}
	fi, err := os.Stat(path)
	if len(secrets) == 0 || err != nil || fi.Mode().Perm()&0o077 == 0 {
		return ""
	}
	return fmt.Sprintf("%s holds secrets (%s) and other users can read it (mode %04o): chmod 600 %s",
		path, strings.Join(secrets, ", "), fi.Mode().Perm(), path)
}

// key is one leaf of Config: its dotted name and the path of struct fields
// that leads to it.
type key struct {
	name  string
	index []int
	typ   reflect.Type
}

// leafKeys walks Config, sections then their fields, in declaration order.
func leafKeys() []key {
	var out []key
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		sec := ct.Field(i)
		if !sec.IsExported() {
			continue
		}
		for j := range sec.Type.NumField() {
			f := sec.Type.Field(j)
			out = append(out, key{
				name:  sec.Tag.Get("mapstructure") + "." + f.Tag.Get("mapstructure"),
				index: []int{i, j},
				typ:   f.Type,
			})
		}
	}
	return out
}

// checkFileKeys reports the first key of the file, in sorted order, that
// Config does not have. UnmarshalExact would catch it too, but names only
// the section that holds it.
func checkFileKeys(fileKeys []string, keys []key, path string) error {
	known := map[string]bool{}
	sections := map[string]bool{}
	for _, k := range keys {
		known[k.name] = true
		sections[strings.SplitN(k.name, ".", 2)[0]] = true
	}
	slices.Sort(fileKeys)
	for _, fk := range fileKeys {
		switch {
		case known[fk]:
		case sections[fk]:
			return &Error{Key: fk, Problem: fmt.Sprintf("must be a section of keys, not a single value (in %s)", path)}
		default:
			for p := range known {
				if strings.HasPrefix(fk, p+".") {
					return &Error{Key: p, Problem: fmt.Sprintf("must be a single value, not a section (in %s)", path)}
				}
			}
			return &Error{Key: fk, Problem: fmt.Sprintf("unknown key (in %s; see config.example.yaml)", path)}
		}
	}
	return nil
}

var durationType = reflect.TypeFor[time.Duration]()

// strictDurationHook refuses a bare number for a duration: mapstructure would
// read "timeout: 30" as 30 nanoseconds.
func strictDurationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType || from == durationType || from.Kind() == reflect.String {
		return data, nil
	}
	return nil, errors.New("not a duration")
}

// strictNumberHook refuses what mapstructure would quietly bend into a
// number: a fraction for a whole number ("batch_size: 2.5" would read as 2,
// NaN and infinities as anything), and true or false (read as 1 or 0).
// Strings (the environment) are left to mapstructure, which parses them.
func strictNumberHook(from, to reflect.Type, data any) (any, error) {
	if to == durationType {
		return data, nil
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int64, reflect.Float64:
	default:
		return data, nil
	}
	switch from.Kind() {
	case reflect.Bool:
		return nil, errors.New("not a number")
	case reflect.Float32, reflect.Float64:
		if to.Kind() == reflect.Float64 {
			return data, nil
		}
		// -2^63 and 2^63 are exact as float64; int64 holds [-2^63, 2^63).
		f := reflect.ValueOf(data).Float()
		if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
			return nil, errors.New("not a whole number")
		}
	}
	return data, nil
}

// decodeError turns mapstructure's multi-line report into one *Error that
// names the first key it complains about.
func decodeError(err error, v *viper.Viper, keys []key, fromEnv map[string]string, path string) error {
	var de *mapstructure.DecodeError
	if !errors.As(err, &de) {
		return &Error{Key: path, Problem: oneLine(err.Error())}
	}
	name := de.Name()
	i := slices.IndexFunc(keys, func(k key) bool { return k.name == name })
	if i < 0 {
		where := name
		if where == "" {
			where = path
		}
		return &Error{Key: where, Problem: oneLine(de.Unwrap().Error())}
	}
	var want string
	switch t := keys[i].typ; {
	case t == durationType:
		want = `must be a duration like "30s" or "2m"`
	case t.Kind() == reflect.Float64:
		want = "must be a number"
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		want = "must be a whole number"
	case t.Kind() == reflect.Bool:
		want = "must be true or false"
	default:
		// Strings may be secrets: never echo the value.
		want = "must be a single text value"
	}
	if keys[i].typ.Kind() != reflect.String {
		if raw := v.Get(name); raw != nil {
			switch raw.(type) {
			case string:
				want += fmt.Sprintf(", got %q", raw)
			case []any, map[string]any:
				want += ", got a list or section"
			default:
				want += fmt.Sprintf(", got %v", raw)
			}
		}
	}
	if env, ok := fromEnv[name]; ok {
		want += " (from " + env + ")"
	} else if path != "" {
		want += " (in " + path + ")"
	}
	return &Error{Key: name, Problem: want}
}

func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		// The last entry wins, as with exec.Cmd.Env.
		if k, val, ok := strings.Cut(kv, "="); ok && k != "" {
			m[k] = val
		}
	}
	return m
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

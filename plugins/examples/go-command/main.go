// go-command: a Prism generator plugin written in Go, built as a WASI command module
// (GOOS=wasip1 GOARCH=wasm). The request JSON arrives on stdin, the response goes to
// stdout, and an error is a message on stderr with exit status 1: the same protocol as
// a Rust plugin's prism_plugin_sdk::run_command.
//
// It spreads services over rollout waves: input `services: [name, ...]` and
// `waves: N` (default 3); output one parameter set per service with its `wave` (0 to
// N-1, from a stable FNV-1a hash of the name, so a service keeps its wave as others come
// and go) and Argo CD's `syncWave` annotation value. The matrix child's parameters, if
// any, are passed through unchanged.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"sort"
	"strconv"
)

type request struct {
	APIVersion         string         `json:"apiVersion"`
	ApplicationSetName string         `json:"applicationSetName"`
	Input              input          `json:"input"`
	Parameters         map[string]any `json:"parameters"`
}

type input struct {
	Parameters struct {
		Services []string `json:"services"`
		Waves    *int     `json:"waves"`
	} `json:"parameters"`
}

type response struct {
	Output struct {
		Parameters []map[string]any `json:"parameters"`
	} `json:"output"`
}

const maxWaves = 100

func generate(req request) ([]map[string]any, error) {
	if req.APIVersion != "prism.dev/plugin/v1" {
		return nil, fmt.Errorf("apiVersion %q is not prism.dev/plugin/v1", req.APIVersion)
	}
	waves := 3
	if req.Input.Parameters.Waves != nil {
		waves = *req.Input.Parameters.Waves
	}
	if waves < 1 || waves > maxWaves {
		return nil, fmt.Errorf("input.parameters.waves: %d is not between 1 and %d", waves, maxWaves)
	}
	services := append([]string(nil), req.Input.Parameters.Services...)
	if len(services) == 0 {
		return nil, errors.New("input.parameters.services: give at least one service name")
	}
	sort.Strings(services)
	out := make([]map[string]any, 0, len(services))
	for i, name := range services {
		if name == "" {
			return nil, fmt.Errorf("input.parameters.services[%d]: empty name", i)
		}
		if i > 0 && services[i-1] == name {
			return nil, fmt.Errorf("input.parameters.services: %q is listed twice", name)
		}
		h := fnv.New32a()
		h.Write([]byte(name))
		wave := int(h.Sum32() % uint32(waves))
		set := map[string]any{}
		for k, v := range req.Parameters {
			set[k] = v
		}
		set["service"] = name
		set["wave"] = strconv.Itoa(wave)
		set["syncWave"] = strconv.Itoa(wave * 10)
		out = append(out, set)
	}
	return out, nil
}

func main() {
	body, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "reading the request: %v\n", err)
		os.Exit(1)
	}
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		fmt.Fprintf(os.Stderr, "the request is not JSON: %v\n", err)
		os.Exit(1)
	}
	sets, err := generate(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var resp response
	resp.Output.Parameters = sets
	if err := json.NewEncoder(os.Stdout).Encode(resp); err != nil {
		os.Exit(1)
	}
}

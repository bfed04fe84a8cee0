package policies

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// The built-in missions, as policy files (missions/*.toml).
//
//go:embed missions/*.toml
var missionFS embed.FS

// ErrUnknownMission: no built-in mission has the name.
var ErrUnknownMission = errors.New("unknown mission")

// MissionNames lists the built-in missions.
func MissionNames() []string {
	entries, _ := fs.ReadDir(missionFS, "missions")
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ".toml"))
	}
	slices.Sort(out)
	return out
}

// MissionSource returns a mission's TOML.
func MissionSource(name string) ([]byte, error) {
	if !slices.Contains(MissionNames(), name) {
		return nil, fmt.Errorf("%w %q (%s)", ErrUnknownMission, name, strings.Join(MissionNames(), " | "))
	}
	return missionFS.ReadFile("missions/" + name + ".toml")
}

// LoadMission parses a built-in mission.
func LoadMission(name string) (*Policy, error) {
	src, err := MissionSource(name)
	if err != nil {
		return nil, err
	}
	return Parse("mission "+name, src)
}

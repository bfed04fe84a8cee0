package telemetry

import (
	"strconv"
	"unicode/utf8"
)

// SlurmFacts are the Slurm job a run ran in, from the variables slurmd
// puts in a job's environment (sbatch(1) "OUTPUT ENVIRONMENT
// VARIABLES"); a field is empty when its variable is unset.
type SlurmFacts struct {
	JobID       string `json:"job_id"`                  // SLURM_JOB_ID
	ArrayJobID  string `json:"array_job_id,omitempty"`  // SLURM_ARRAY_JOB_ID
	ArrayTaskID string `json:"array_task_id,omitempty"` // SLURM_ARRAY_TASK_ID
	// RestartCount is SLURM_RESTART_COUNT: how many times the job was
	// requeued (0 on its first run, and when unset).
	RestartCount int    `json:"restart_count"`
	JobName      string `json:"job_name,omitempty"`  // SLURM_JOB_NAME
	Partition    string `json:"partition,omitempty"` // SLURM_JOB_PARTITION
	Cluster      string `json:"cluster,omitempty"`   // SLURM_CLUSTER_NAME
	Node         string `json:"node,omitempty"`      // SLURMD_NODENAME
	StepID       string `json:"step_id,omitempty"`   // SLURM_STEP_ID (under srun)
}

// maxSlurmFact bounds each value kept: the variables come from the
// environment, which anyone starting prism-run can set.
const maxSlurmFact = 256

// ReadSlurm returns the Slurm job the environment names (getenv is
// os.Getenv in a run), or nil outside Slurm (no SLURM_JOB_ID). Values
// that are not UTF-8 or are longer than 256 bytes are left out, and an
// unreadable SLURM_RESTART_COUNT reads 0.
func ReadSlurm(getenv func(string) string) *SlurmFacts {
	get := func(k string) string {
		v := getenv(k)
		if len(v) > maxSlurmFact || !utf8.ValidString(v) {
			return ""
		}
		return v
	}
	id := get("SLURM_JOB_ID")
	if id == "" {
		return nil
	}
	n, err := strconv.Atoi(get("SLURM_RESTART_COUNT"))
	if err != nil || n < 0 {
		n = 0
	}
	return &SlurmFacts{
		JobID: id, ArrayJobID: get("SLURM_ARRAY_JOB_ID"), ArrayTaskID: get("SLURM_ARRAY_TASK_ID"),
		RestartCount: n, JobName: get("SLURM_JOB_NAME"), Partition: get("SLURM_JOB_PARTITION"),
		Cluster: get("SLURM_CLUSTER_NAME"), Node: get("SLURMD_NODENAME"), StepID: get("SLURM_STEP_ID"),
	}
}

// Labels are the metric labels a Slurm job adds: slurm_job_id, and in a
// job array slurm_array_job_id and slurm_array_task_id (each task has a
// job id of its own; dashboards group a sweep by the array's).
func (s *SlurmFacts) Labels() map[string]string {
	if s == nil {
		return nil
	}
	l := map[string]string{"slurm_job_id": s.JobID}
	if s.ArrayTaskID != "" {
		l["slurm_array_job_id"] = s.ArrayJobID
		l["slurm_array_task_id"] = s.ArrayTaskID
	}
	return l
}

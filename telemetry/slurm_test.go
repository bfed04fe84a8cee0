package telemetry

import (
	"reflect"
	"strings"
	"testing"
)

func TestReadSlurm(t *testing.T) {
	cases := []struct {
		name   string
		env    map[string]string
		want   *SlurmFacts
		labels map[string]string
	}{
		{"outside Slurm", map[string]string{"SLURM_JOB_NAME": "x"}, nil, nil},
		{"a batch job, requeued once",
			map[string]string{"SLURM_JOB_ID": "42", "SLURM_RESTART_COUNT": "1", "SLURM_JOB_NAME": "colorer",
				"SLURM_JOB_PARTITION": "gpu", "SLURM_CLUSTER_NAME": "c", "SLURMD_NODENAME": "n1"},
			&SlurmFacts{JobID: "42", RestartCount: 1, JobName: "colorer", Partition: "gpu", Cluster: "c", Node: "n1"},
			map[string]string{"slurm_job_id": "42"}},
		{"an array task",
			map[string]string{"SLURM_JOB_ID": "43", "SLURM_ARRAY_JOB_ID": "40", "SLURM_ARRAY_TASK_ID": "3"},
			&SlurmFacts{JobID: "43", ArrayJobID: "40", ArrayTaskID: "3"},
			map[string]string{"slurm_job_id": "43", "slurm_array_job_id": "40", "slurm_array_task_id": "3"}},
		{"unreadable values are left out",
			map[string]string{"SLURM_JOB_ID": "44", "SLURM_RESTART_COUNT": "-2", "SLURM_JOB_NAME": "\xff",
				"SLURM_JOB_PARTITION": strings.Repeat("p", 300)},
			&SlurmFacts{JobID: "44"},
			map[string]string{"slurm_job_id": "44"}},
		{"a job id that is not UTF-8 is no job", map[string]string{"SLURM_JOB_ID": "\xfe"}, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ReadSlurm(func(k string) string { return c.env[k] })
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("ReadSlurm = %+v, want %+v", got, c.want)
			}
			if l := got.Labels(); !reflect.DeepEqual(l, c.labels) {
				t.Fatalf("Labels = %v, want %v", l, c.labels)
			}
		})
	}
}

// Package lifecycle is cowvol's Amazon Data Lifecycle Manager: snapshot
// lifecycle policies (the DLM API's PolicyDetails of type
// EBS_SNAPSHOT_MANAGEMENT over VOLUME resources) and the scheduler that
// runs them inside the daemon.
//
// A policy targets the volumes carrying all of its TargetTags. Each of its
// schedules (at most four) creates snapshots of them at the times of its
// CreateRule (every Interval hours from a start time, or a cron
// expression) and keeps the newest RetainRule.Count of them, or those
// younger than RetainRule.Interval units. Every snapshot a policy makes
// carries the tags aws:dlm:lifecycle-policy-id and
// aws:dlm:lifecycle-schedule-name, which only the daemon can set; the
// retention deletes only snapshots carrying the policy's and schedule's
// tags, oldest first.
//
// Policies and the scheduler's progress (for each schedule, the scheduled
// time it last served and the volumes it served then) live in one JSON
// file in the daemon's data dir, written atomically (store.go): a restart
// resumes where the scheduler stopped, and a run missed while the daemon
// was down runs once after it starts, not once per missed interval.
//
// Files: policy.go (the policy as the API has it), validate.go (what is
// accepted), cron.go (cron expressions), schedule.go (when a schedule is
// due, jitter), retention.go (what retention deletes), store.go (the
// durable state), manager.go (the API's operations), scheduler.go (the
// goroutine that runs policies).
package lifecycle

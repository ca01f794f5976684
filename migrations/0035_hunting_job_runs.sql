-- 0035: hunting: when each scheduled hunting job (the Graph pull, the
-- hourly prune) last started on any replica. gocron's distributed locker
-- keeps two runs of a job from overlapping, not every replica from running
-- it every interval: with three replicas Graph was pulled three times a
-- minute per tenant. A run starts only when it claims its job's row
-- (hunting/policy.go, claimRun).
CREATE TABLE hunting_job_runs (
    job    text        PRIMARY KEY,
    ran_at timestamptz NOT NULL
);

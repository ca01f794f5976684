-- 0029: casework: the reminder sweep, the lists of open cases and the
-- report's notification figures read what they are asked for, not every
-- case or incident ever stored. Owned by the casework package.
--
-- The reminder sweep (once a minute) looks for waiting cases not reminded
-- in their current wait. cases_remind_due held every waiting case, so a
-- case reminded and never answered stayed in it for good and each sweep
-- read it again, from the table, to see it had had its reminder. Now the
-- index holds only the cases a sweep may still remind: its condition is the
-- sweep's (casework/escalate.go), word for word, so the planner can use it.
-- A reminder takes its case out of the index, so that update is no longer
-- HOT: one index entry per wait.
-- Built under a new name, and the old one dropped at the end of this
-- migration: a DROP INDEX locks the table against reads until the
-- migration commits, and the builds take a while on big tables.
CREATE INDEX cases_remind_due_next ON cases (status_at)
    WHERE status IN ('more_info_needed', 'file_sample_needed') AND (reminded_at IS NULL OR reminded_at <= status_at);

-- Lists by status across orgs (an expert's open cases: autocomplete on
-- every keystroke, /take, the web tracker) had no index led by status:
-- cases_org_status_idx and cases_assignee_idx have it second, so each list
-- read the whole of one of them, or the table. The list sorts on urgency
-- keys computed at read time and counts every match, so no index order
-- saves it reading the matches; this one leads to them. status is in other
-- indexes already: no update loses HOT.
CREATE INDEX cases_status_idx ON cases (status);

-- The service report and the weekly digest count the incident cards posted
-- in their period (casework/report.go, notificationSQL: org = ANY, posted_at
-- range). No index had posted_at, so each read every incident of the orgs.
-- posted_at is set once, when an incident's first card is posted: one index
-- entry per posted incident. Incidents never posted are left out; the
-- query's posted_at range implies the condition.
CREATE INDEX hunting_incidents_posted_idx ON hunting_incidents (org, posted_at) WHERE posted_at IS NOT NULL;

DROP INDEX cases_remind_due;
ALTER INDEX cases_remind_due_next RENAME TO cases_remind_due;

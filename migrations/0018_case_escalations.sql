-- 0018: cases: paging a high-priority case nobody took, and reminding a
-- requester an expert waits on. Owned by the casework package.
--
-- Each is decided once by the SLA sweep, whichever replica runs it: a
-- conditional UPDATE of these columns in the same transaction as the outbox
-- event that pages or reminds (casework/escalate.go), as the SLA notices do
-- with response_warned_at and the like.

ALTER TABLE cases
    -- When the next expert on the rotation and the managers were paged about
    -- this case (it was high priority and still new oncall.page_after after
    -- it opened). Set once; a case is paged at most once.
    ADD COLUMN paged_at    timestamptz,
    -- When the requester was last reminded that an expert waits on them
    -- (more_info_needed or file_sample_needed for cases.remind_after). A
    -- reminder is due again only in a later wait: when status_at is at or
    -- after it (a wait's reminder always comes strictly after its status_at).
    ADD COLUMN reminded_at timestamptz;

-- The sweep's two questions, over the few cases they concern.
CREATE INDEX cases_page_due ON cases (created_at) WHERE status = 'new' AND priority = 'high' AND paged_at IS NULL;
CREATE INDEX cases_remind_due ON cases (status_at) WHERE status IN ('more_info_needed', 'file_sample_needed');

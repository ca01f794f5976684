-- 0034: hunting: who acknowledged an incident, by the platform's user id
-- (platform, workspace and user), beside the name shown on the card. Two
-- people of one name are told apart, and one person's retried press is
-- recognised even when the name could not be looked up the second time.
-- Incidents acknowledged before keep only the name, and are compared by it.
ALTER TABLE hunting_incidents ADD COLUMN acked_by_id text;

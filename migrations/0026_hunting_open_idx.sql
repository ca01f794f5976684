-- 0026: hunting: the open incidents, for the sweep's re-scoring. Owned by
-- the hunting package.
--
-- Re-scoring looks for open incidents untouched for a while, once a minute.
-- No index led to them, so each pass read every incident ever stored, open
-- or closed (through the whole of an index, or the table), and the table
-- only grows. This one holds only the open ones.
-- It is on id, which never changes, and status is already in other
-- indexes: the updates intake makes to open incidents stay HOT.
CREATE INDEX hunting_incidents_open_idx ON hunting_incidents (id) WHERE status = 'open';

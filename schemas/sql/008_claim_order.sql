-- 008_claim_order.sql - the claim walks due jobs in the order the per-lead check judges them, (due_at,
-- job_id): the first pending job of a lead the walk meets is its head. Ordered by due_at alone, jobs with
-- the same due time came in heap order, and a lead's head (its smallest job_id) was anywhere among them:
-- with 10 jobs per lead due at once, most candidates failed the check and a claim of 256 walked thousands
-- (bench/profile.py: 26.5 ms per claim).
CREATE INDEX jobs_due_order ON jobs (due_at, job_id) WHERE state = 'scheduled';
DROP INDEX jobs_due;
ALTER INDEX jobs_due_order RENAME TO jobs_due;

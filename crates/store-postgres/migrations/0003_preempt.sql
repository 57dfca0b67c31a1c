-- A plan's preemption is recorded on the attempt until its cluster confirms the stop.
ALTER TABLE attempts ADD COLUMN preempt_requested BOOLEAN NOT NULL DEFAULT FALSE;

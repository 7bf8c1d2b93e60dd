ALTER TABLE rollout_pauses ADD COLUMN paused_by TEXT;

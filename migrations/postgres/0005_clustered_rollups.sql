-- The SQLite migration of this number stores the rollups clustered by their primary key.
-- PostgreSQL reads the same ranges through the primary key's index already, so its tables
-- stay as they are; this migration only keeps the two folders' numbers in step.
SELECT 1;

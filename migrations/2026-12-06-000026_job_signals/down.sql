DROP TABLE job_signals;

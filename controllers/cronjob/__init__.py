"""The CronJob controller: Jobs made on a cron schedule, with concurrency policies and bounded history."""

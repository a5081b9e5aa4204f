"""A scheduled job as Modal's docs write one ("Scheduling remote cron jobs"), with only the
import changed; deployed with `nbfan deploy`, it runs on the cluster by itself."""

from datetime import datetime

import nbfan as modal

app = modal.App("example-schedule")


@app.function(schedule=modal.Period(seconds=2))
def print_time_1():
    print(f"Printing with period 2 seconds: {datetime.now()}")


@app.function(schedule=modal.Cron("0 9 * * mon", timezone="America/New_York"))
def weekly_report():
    print("the Monday report")

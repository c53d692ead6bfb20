"""The background scheduler: a lease elects one process for periodic jobs, every process runs jobs.

`lease` holds the election, `periodic` the periodic jobs, `runner` the thread that drives
both. The runner is started by the gunicorn worker hook (gunicorn.conf.py) or by
`flask scheduler run`; creating the app starts nothing.
"""

"""The job contract: what a job is, shared by the API, the services, the store and the worker.

- `records`: kinds, statuses, events and the `Job` record the services see.
- `spec`: what a job runs (`JobSpec`, one typed payload per kind), the models it pins (`ModelPin`) and what
  lists and A1111/ComfyUI answers show (`JobSummary`); their JSON form is written and read here only.
- `wire`: the messages of the worker protocol (`/api/v1/worker/…`), one definition for server and worker.
"""

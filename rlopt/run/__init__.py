"""A run's whole life: `experiment` takes one run from its folder to its summary (train, evaluate and tune all
call it); `runner` drives the controller through the environment (episodes, recording, checkpoints), and
`protocol` is what a controller is to it and sees of the run. Beneath them: `folder` (lock, resume checks,
`.hydra/`), `recorder` (the CSVs), `checkpoint` (exact resume), `interrupts`, `failures` (the record of a run
that stopped) and `killpoints` (test-only kills).
"""

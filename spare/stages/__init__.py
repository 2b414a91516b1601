"""Stages that work on a finished run (the run layer, beside :mod:`spare.run`): the adversarial
prompt attack (:mod:`spare.stages.attack`)."""

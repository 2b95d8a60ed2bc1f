"""The MLflow Model Registry side, one concern per module (import the module you need; nothing is re-exported):

- `serving`: the generator as a pyfunc model, its request contract, loading a version by URI or alias;
- `registration`: the register stage, logging and registering a version with its tags and gate evidence;
- `promotion`: the gate that moves the champion alias, on the paired evidence each version carries;
- `champion`: the champion version as data, for the evaluate report.
"""

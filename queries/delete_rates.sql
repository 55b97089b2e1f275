-- Empty the rates table before a refresh writes the new one. No params.
DELETE FROM rates

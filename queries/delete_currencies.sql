-- Empty the currency names before a refresh writes the new ones. No params.
DELETE FROM currencies

-- The whole stored rates table, each code's rate against the US dollar. No params.
SELECT code, rate FROM rates

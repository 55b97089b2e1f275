-- The comparison keys become binary strings: utf8mb4_bin is PAD SPACE, so 'nigeria ' equalled
-- 'nigeria' in lookups and in the unique index. Binary strings compare every byte.
ALTER TABLE countries
    MODIFY name_key VARBINARY(3060) NOT NULL,
    MODIFY region_key VARBINARY(3060) NULL,
    MODIFY currency_key VARBINARY(3060) NULL;

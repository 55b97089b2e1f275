ALTER TABLE countries
    MODIFY name_key VARCHAR(765) NOT NULL,
    MODIFY region_key VARCHAR(765) NULL,
    MODIFY currency_key VARCHAR(765) NULL;

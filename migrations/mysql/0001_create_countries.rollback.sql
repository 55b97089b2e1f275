DROP TABLE refresh_state;
DROP TABLE countries;

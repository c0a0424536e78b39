"""The ИАС МКГУ emulator: receives the module's batches (aggregates in JSON, individual ratings in the
vashkontrol "rates" XML), keeps each batch id once and shows what it got."""

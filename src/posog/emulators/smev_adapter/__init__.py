"""The СМЭВ-adapter emulator: the adapter's AMQP interface and web service as ПОС ОГ sees them."""

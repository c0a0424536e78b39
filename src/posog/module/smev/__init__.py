"""The СМЭВ 3 adapter edge (INTEGRATION.md): the adapter's envelope, the port that sends to it, the
вид сведений ОГ and the answers to the senders of facts."""

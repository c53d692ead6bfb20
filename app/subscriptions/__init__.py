"""Graph change-notification subscriptions: their lifecycle in Graph (`lifecycle`), the jobs
that create, renew and delete them (`jobs`), the notifications they bring (`notifications`)
and which calendar link each one belongs to (`routing`)."""

//! The timer actor: every `tick_every` it asks the pools that have something due to
//! expire it. Pools publish their next due moment, so a tick reads one number per
//! tenant and sends nothing to a pool with nothing due, however many sessions it holds.

use std::sync::{Arc, Weak};
use std::time::Duration;

use actix::{Actor, ActorContext, AsyncContext, Context};

use crate::clock::Clock;
use crate::registry::Registry;

pub(crate) struct Timer {
    pub(crate) registry: Weak<Registry>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) every: Duration,
    pub(crate) keep_orphans_for: Duration,
    pub(crate) retry_after: Duration,
}

impl Actor for Timer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.every, |timer, ctx| match timer.registry.upgrade() {
            Some(registry) => {
                registry.tick(timer.clock.now(), timer.keep_orphans_for, timer.retry_after);
            }
            None => ctx.stop(),
        });
    }
}

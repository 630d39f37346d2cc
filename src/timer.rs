//! The timer actor: every `tick_every` it asks the pools that have something due to
//! expire it. Pools publish their next due moment, so a tick reads one number per
//! tenant and sends nothing to a pool with nothing due, however many sessions it holds.

use std::sync::Weak;
use std::time::Duration;

use actix::{Actor, ActorContext, AsyncContext, Context};

use crate::engine::Inner;

pub(crate) struct Timer {
    pub(crate) engine: Weak<Inner>,
    pub(crate) every: Duration,
}

impl Actor for Timer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.every, |timer, ctx| match timer.engine.upgrade() {
            Some(engine) => {
                engine.tick();
            }
            None => ctx.stop(),
        });
    }
}

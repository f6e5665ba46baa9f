//! The one place the sink calls librdkafka directly: the produce call of every record.
//!
//! rdkafka's safe `BaseProducer::send` names the topic per message (`RD_KAFKA_VTYPE_TOPIC`):
//! it allocates a `CString` of the name, and librdkafka then takes the client's **write**
//! lock (`rd_kafka_wrlock`, the lock its broker threads take for reading) to find the topic
//! by name in a list, and counts a reference in and out. Here the sink creates the topic
//! handle once per producer (`rd_kafka_topic_new`) and produces with it
//! (`RD_KAFKA_VTYPE_RKT` through `rd_kafka_produceva`): per message, one reference count,
//! no lock on the client, no allocation of ours. librdkafka's own per-message work is the
//! same: the message (payload and key copied in, `RD_KAFKA_MSG_F_COPY`), the `ce_type` header,
//! the partitioner, the partition queue. BENCHMARKS.md (session 10) has the figures.
//!
//! Safety, in one place: every `unsafe` block of the sink is in this file, behind the safe
//! [`SinkProducer`].
//! - [`Topic`] is created from a live client and destroyed in its `Drop`; [`SinkProducer`]
//!   owns both and declares the topic before the client, so it is destroyed first (librdkafka
//!   requires the application's topic handles to be gone before `rd_kafka_destroy`), and a
//!   topic is only ever used with the client it was created on.
//! - [`produce`] passes pointers that live for the call: librdkafka copies key, payload and
//!   header (`RD_KAFKA_MSG_F_COPY`, `RD_KAFKA_VTYPE_HEADER`) before it returns, and frees the
//!   header list it built itself when the call fails. The opaque is a number, never a pointer.

#![allow(unsafe_code)]

use std::ffi::{c_void, CStr, CString};
use std::ptr::NonNull;

use openclick_events::ENGAGEMENT_EVENT_TYPE;
use rdkafka::bindings as rd;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{Producer, ThreadedProducer};

use super::delivery::DeliveryContext;

/// The header every record carries (see `proto/openclick/v1/event.proto`).
const HEADER_NAME: &CStr = c"ce_type";

/// A producer and the handle of the topic it produces to. Derefs to the rdkafka producer for
/// everything but the produce call (flush, purge, queue length, metadata).
pub(crate) struct SinkProducer {
    // Declared first, so dropped first.
    topic: Topic,
    client: ThreadedProducer<DeliveryContext>,
}

impl SinkProducer {
    /// Takes `client` and creates its handle of `topic`.
    pub(crate) fn new(
        client: ThreadedProducer<DeliveryContext>,
        topic: &str,
    ) -> Result<SinkProducer, String> {
        // SAFETY: the client is alive; `SinkProducer` keeps it and drops the handle first.
        let topic = unsafe { Topic::new(client.client().native_ptr(), topic)? };
        Ok(SinkProducer { topic, client })
    }

    /// Hands one record to librdkafka (copied), with the `ce_type` header; `opaque` comes back
    /// in its delivery report. Errors are librdkafka's refusals (queue full, too large, ...).
    pub(crate) fn send(
        &self,
        key: &[u8],
        payload: &[u8],
        opaque: usize,
    ) -> Result<(), RDKafkaErrorCode> {
        // SAFETY: `topic` was created on this very client, which is alive while `self` is.
        unsafe {
            produce(
                self.client.client().native_ptr(),
                &self.topic,
                key,
                payload,
                ENGAGEMENT_EVENT_TYPE.as_bytes(),
                opaque,
            )
        }
    }
}

impl std::ops::Deref for SinkProducer {
    type Target = ThreadedProducer<DeliveryContext>;

    fn deref(&self) -> &Self::Target {
        &self.client
    }
}

/// A topic handle of one client (`rd_kafka_topic_t`), destroyed on drop.
struct Topic {
    ptr: NonNull<rd::rd_kafka_topic_t>,
}

// librdkafka's topic handles are thread-safe (refcounted, internally locked).
unsafe impl Send for Topic {}
unsafe impl Sync for Topic {}

impl Topic {
    /// Creates (or finds) `name` on the client `rk`, with the client's default topic
    /// configuration, as the per-message topic name would.
    ///
    /// # Safety
    /// `rk` is a live client that outlives the returned handle.
    unsafe fn new(rk: *mut rd::rd_kafka_t, name: &str) -> Result<Topic, String> {
        let cname = CString::new(name).map_err(|_| format!("topic name {name:?} contains NUL"))?;
        // SAFETY: `rk` is live (the caller's contract); `cname` lives for the call; a NULL
        // configuration means the client's default topic configuration.
        let ptr = unsafe { rd::rd_kafka_topic_new(rk, cname.as_ptr(), std::ptr::null_mut()) };
        match NonNull::new(ptr) {
            Some(ptr) => Ok(Topic { ptr }),
            None => {
                // SAFETY: reads librdkafka's thread-local last error.
                let code: RDKafkaErrorCode = unsafe { rd::rd_kafka_last_error() }.into();
                Err(format!("cannot create topic handle {name:?}: {code}"))
            }
        }
    }
}

impl Drop for Topic {
    fn drop(&mut self) {
        // SAFETY: created by `rd_kafka_topic_new` and destroyed once; the client is still live
        // (the owner declares this field before the client).
        unsafe { rd::rd_kafka_topic_destroy(self.ptr.as_ptr()) }
    }
}

/// Produces one record to `topic` on `rk`: key and payload copied, the `ce_type` header set
/// to `ce_type`, partitioned by librdkafka's partitioner, `opaque` handed back in its
/// delivery report.
///
/// # Safety
/// `rk` is the live client `topic` was created on.
unsafe fn produce(
    rk: *mut rd::rd_kafka_t,
    topic: &Topic,
    key: &[u8],
    payload: &[u8],
    ce_type: &[u8],
    opaque: usize,
) -> Result<(), RDKafkaErrorCode> {
    use rd::rd_kafka_vtype_t as V;
    fn vu(vtype: V, u: rd::rd_kafka_vu_s__bindgen_ty_1) -> rd::rd_kafka_vu_t {
        rd::rd_kafka_vu_t { vtype, u }
    }
    type U = rd::rd_kafka_vu_s__bindgen_ty_1;
    let mem = |b: &[u8]| U {
        mem: rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 {
            ptr: b.as_ptr() as *mut c_void,
            size: b.len(),
        },
    };
    let vus = [
        vu(
            V::RD_KAFKA_VTYPE_RKT,
            U {
                rkt: topic.ptr.as_ptr(),
            },
        ),
        vu(
            V::RD_KAFKA_VTYPE_MSGFLAGS,
            U {
                i: rd::RD_KAFKA_MSG_F_COPY,
            },
        ),
        vu(V::RD_KAFKA_VTYPE_VALUE, mem(payload)),
        vu(V::RD_KAFKA_VTYPE_KEY, mem(key)),
        vu(
            V::RD_KAFKA_VTYPE_OPAQUE,
            U {
                ptr: opaque as *mut c_void,
            },
        ),
        vu(
            V::RD_KAFKA_VTYPE_HEADER,
            U {
                header: rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_2 {
                    name: HEADER_NAME.as_ptr(),
                    val: ce_type.as_ptr() as *const c_void,
                    size: ce_type.len() as isize,
                },
            },
        ),
    ];
    // SAFETY: `rk` and `topic` are live (the caller's contract); every pointer in `vus` is
    // valid for the call and librdkafka copies what it keeps (see the module docs).
    let error = unsafe { rd::rd_kafka_produceva(rk, vus.as_ptr(), vus.len()) };
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: a non-NULL error object is ours to read and destroy, once.
    let code = unsafe {
        let code = rd::rd_kafka_error_code(error);
        rd::rd_kafka_error_destroy(error);
        code
    };
    Err(code.into())
}

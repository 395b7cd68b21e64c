//! The object stores a cluster's processes read the store through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreRegistry;
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;
use url::Url;

/// Local paths, and `s3://` buckets whose client is built on first use from this process's
/// environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, …, as for
/// `loggvakt publish`): each scheduler and executor is configured where it runs, and a plan
/// names only the bucket.
#[derive(Debug, Default)]
pub struct StoreRegistry {
    local: Arc<LocalFileSystem>,
    /// By `scheme://host`; as many entries as buckets a review reads (one, mostly).
    stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

fn key(url: &Url) -> String {
    format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""))
}

impl ObjectStoreRegistry for StoreRegistry {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.stores.lock().ok()?.insert(key(url), store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let mut stores = self.stores.lock().map_err(|_| DataFusionError::Internal("the object store registry's lock is poisoned".into()))?;
        stores.remove(&key(url)).ok_or_else(|| DataFusionError::Execution(format!("no object store is registered for {url}")))
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        match url.scheme() {
            "" | "file" => Ok(self.local.clone()),
            "s3" => {
                let mut stores = self.stores.lock().map_err(|_| DataFusionError::Internal("the object store registry's lock is poisoned".into()))?;
                if let Some(store) = stores.get(&key(url)) {
                    return Ok(store.clone());
                }
                let bucket = url.host_str().ok_or_else(|| DataFusionError::Execution(format!("{url}: no bucket named")))?;
                let store = loggvakt_storage::s3_object_store(bucket, &loggvakt_storage::S3Settings::default())
                    .map_err(|reason| DataFusionError::Execution(format!("the bucket {bucket}, configured from this process's AWS_* environment: {reason}")))?;
                stores.insert(key(url), store.clone());
                Ok(store)
            }
            other => Err(DataFusionError::Execution(format!("{url}: a store is read from a local path or s3://, not {other}://"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_and_buckets_resolve_and_other_schemes_are_refused() {
        let registry = StoreRegistry::default();
        assert!(registry.get_store(&Url::parse("file:///tmp/x").unwrap()).is_ok());
        let s3 = registry.get_store(&Url::parse("s3://review-bucket/prefix/data/a.parquet").unwrap()).unwrap();
        let again = registry.get_store(&Url::parse("s3://review-bucket/other").unwrap()).unwrap();
        assert!(Arc::ptr_eq(&s3, &again), "one client per bucket");
        let refused = registry.get_store(&Url::parse("hdfs://namenode/x").unwrap()).unwrap_err().to_string();
        assert!(refused.contains("hdfs://"), "{refused}");
    }
}

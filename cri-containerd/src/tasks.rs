//! containerd's Tasks service: the processes of containers (create, start,
//! kill, wait, exec, delete, metrics).

use crate::traced::TracedChannel;
use async_trait::async_trait;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    CloseIoRequest, CreateTaskRequest, DeleteProcessRequest, DeleteTaskRequest, ExecProcessRequest,
    GetRequest, KillRequest, ListPidsRequest, ListTasksRequest, MetricsRequest, ResizePtyRequest,
    StartRequest, UpdateTaskRequest, WaitRequest,
};
use cri_api::containerd::{
    Any, CreateTask, ExecProcess, ExitStatus, Result, TaskInfo, TaskMetric, Tasks,
};

use super::convert::{from_timestamp, metric_from_proto, mounts_to_proto, task_from_proto};
use super::{quote_filter_value, ContainerdClient, Deadline, MAX_MESSAGE_SIZE};

/// [`Tasks`] over containerd's gRPC API.
#[derive(Clone, Debug)]
pub struct ContainerdTasks {
    client: ContainerdClient,
}

impl ContainerdTasks {
    pub fn new(client: ContainerdClient) -> Self {
        Self { client }
    }

    fn api(&self) -> TasksClient<TracedChannel> {
        TasksClient::new(self.client.channel())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }
}

/// Names the process in errors: the container id, plus `/exec_id`.
fn process_name(container_id: &str, exec_id: &str) -> String {
    if exec_id.is_empty() {
        container_id.to_owned()
    } else {
        format!("{container_id}/{exec_id}")
    }
}

/// The metrics filters selecting `container_ids` (containerd ORs them).
fn metrics_filters(container_ids: Vec<String>) -> Vec<String> {
    container_ids
        .iter()
        .map(|id| format!("id=={}", quote_filter_value(id)))
        .collect()
}

#[async_trait]
impl Tasks for ContainerdTasks {
    async fn create(&self, task: CreateTask) -> Result<u32> {
        const OP: &str = "create task";
        let id = task.container_id.clone();
        let request = CreateTaskRequest {
            container_id: task.container_id,
            rootfs: mounts_to_proto(task.rootfs),
            stdin: task.stdin,
            stdout: task.stdout,
            stderr: task.stderr,
            terminal: task.terminal,
            checkpoint: None,
            options: task.options,
            runtime_path: task.runtime_path,
        };
        let reply = self
            .api()
            .create(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &id, &s))?;
        Ok(reply.into_inner().pid)
    }

    async fn start(&self, container_id: &str, exec_id: &str) -> Result<u32> {
        const OP: &str = "start task";
        let request = StartRequest {
            container_id: container_id.to_owned(),
            exec_id: exec_id.to_owned(),
        };
        let reply = self
            .api()
            .start(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| {
                self.client
                    .error(OP, &process_name(container_id, exec_id), &s)
            })?;
        Ok(reply.into_inner().pid)
    }

    async fn get(&self, container_id: &str, exec_id: &str) -> Result<TaskInfo> {
        const OP: &str = "get task";
        let request = GetRequest {
            container_id: container_id.to_owned(),
            exec_id: exec_id.to_owned(),
        };
        let reply = self
            .api()
            .get(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| {
                self.client
                    .error(OP, &process_name(container_id, exec_id), &s)
            })?;
        let process = reply
            .into_inner()
            .process
            .ok_or_else(|| ContainerdClient::missing(OP, "process"))?;
        Ok(task_from_proto(process))
    }

    async fn list(&self) -> Result<Vec<TaskInfo>> {
        const OP: &str = "list tasks";
        let request = ListTasksRequest {
            filter: String::new(),
        };
        let reply = self
            .api()
            .list(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, "", &s))?;
        Ok(reply
            .into_inner()
            .tasks
            .into_iter()
            .map(task_from_proto)
            .collect())
    }

    async fn delete(&self, container_id: &str, exec_id: &str) -> Result<ExitStatus> {
        const OP: &str = "delete task";
        let what = process_name(container_id, exec_id);
        let reply = if exec_id.is_empty() {
            let request = DeleteTaskRequest {
                container_id: container_id.to_owned(),
            };
            self.api()
                .delete(self.client.request(request, Deadline::Default))
                .await
        } else {
            let request = DeleteProcessRequest {
                container_id: container_id.to_owned(),
                exec_id: exec_id.to_owned(),
            };
            self.api()
                .delete_process(self.client.request(request, Deadline::Default))
                .await
        }
        .map_err(|s| self.client.error(OP, &what, &s))?
        .into_inner();
        Ok(ExitStatus {
            code: reply.exit_status,
            exited_at: from_timestamp(reply.exited_at),
        })
    }

    async fn kill(&self, container_id: &str, exec_id: &str, signal: u32, all: bool) -> Result<()> {
        const OP: &str = "kill task";
        let request = KillRequest {
            container_id: container_id.to_owned(),
            exec_id: exec_id.to_owned(),
            signal,
            all,
        };
        self.api()
            .kill(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| {
                self.client
                    .error(OP, &process_name(container_id, exec_id), &s)
            })?;
        Ok(())
    }

    async fn wait(&self, container_id: &str, exec_id: &str) -> Result<ExitStatus> {
        const OP: &str = "wait task";
        let request = WaitRequest {
            container_id: container_id.to_owned(),
            exec_id: exec_id.to_owned(),
        };
        // A process may run for as long as it likes: no deadline.
        let reply = self
            .api()
            .wait(self.client.request(request, Deadline::Unbounded))
            .await
            .map_err(|s| {
                self.client
                    .error(OP, &process_name(container_id, exec_id), &s)
            })?
            .into_inner();
        Ok(ExitStatus {
            code: reply.exit_status,
            exited_at: from_timestamp(reply.exited_at),
        })
    }

    async fn exec(&self, process: ExecProcess) -> Result<()> {
        const OP: &str = "exec process";
        let what = process_name(&process.container_id, &process.exec_id);
        let request = ExecProcessRequest {
            container_id: process.container_id,
            stdin: process.stdin,
            stdout: process.stdout,
            stderr: process.stderr,
            terminal: process.terminal,
            spec: process.spec,
            exec_id: process.exec_id,
        };
        self.api()
            .exec(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &what, &s))?;
        Ok(())
    }

    async fn resize_pty(
        &self,
        container_id: &str,
        exec_id: &str,
        width: u32,
        height: u32,
    ) -> Result<()> {
        const OP: &str = "resize pty";
        let request = ResizePtyRequest {
            container_id: container_id.to_owned(),
            exec_id: exec_id.to_owned(),
            width,
            height,
        };
        self.api()
            .resize_pty(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| {
                self.client
                    .error(OP, &process_name(container_id, exec_id), &s)
            })?;
        Ok(())
    }

    async fn close_io(&self, container_id: &str, exec_id: &str) -> Result<()> {
        const OP: &str = "close stdin";
        let request = CloseIoRequest {
            container_id: container_id.to_owned(),
            exec_id: exec_id.to_owned(),
            stdin: true,
        };
        self.api()
            .close_io(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| {
                self.client
                    .error(OP, &process_name(container_id, exec_id), &s)
            })?;
        Ok(())
    }

    async fn metrics(&self, container_ids: Vec<String>) -> Result<Vec<TaskMetric>> {
        const OP: &str = "task metrics";
        // No filter would select every task; no ids means no metrics.
        if container_ids.is_empty() {
            return Ok(Vec::new());
        }
        let what = container_ids.join(",");
        let request = MetricsRequest {
            filters: metrics_filters(container_ids),
        };
        let reply = self
            .api()
            .metrics(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, &what, &s))?;
        Ok(reply
            .into_inner()
            .metrics
            .into_iter()
            .map(metric_from_proto)
            .collect())
    }

    async fn pids(&self, container_id: &str) -> Result<Vec<u32>> {
        const OP: &str = "list task pids";
        let request = ListPidsRequest {
            container_id: container_id.to_owned(),
        };
        let reply = self
            .api()
            .list_pids(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, container_id, &s))?;
        Ok(reply
            .into_inner()
            .processes
            .into_iter()
            .map(|p| p.pid)
            .collect())
    }

    async fn update(&self, container_id: &str, resources: Any) -> Result<()> {
        const OP: &str = "update task";
        let request = UpdateTaskRequest {
            container_id: container_id.to_owned(),
            resources: Some(resources),
            annotations: Default::default(),
        };
        self.api()
            .update(self.client.request(request, Deadline::Default))
            .await
            .map_err(|s| self.client.error(OP, container_id, &s))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_processes() {
        assert_eq!(process_name("c1", ""), "c1");
        assert_eq!(process_name("c1", "e1"), "c1/e1");
    }

    #[test]
    fn metrics_filter_per_container() {
        assert!(metrics_filters(vec![]).is_empty());
        assert_eq!(
            metrics_filters(vec!["a".into(), "b".into()]),
            vec![r#"id=="a""#.to_owned(), r#"id=="b""#.to_owned()]
        );
    }
}

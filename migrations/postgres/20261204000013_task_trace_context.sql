-- The W3C trace context (`traceparent`) of the request that scheduled a task, when traces are
-- exported: the task's runs continue that trace.
ALTER TABLE tasks ADD COLUMN trace_parent TEXT;

# the worker: template pause sequence, template quality, both generations
# of phone_number_quality_update, capabilities, account events, alerts
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use WaTest;
use WaBody qw(change_body);

my $t = WaTest->new;
$t->start_redis;
$t->start_nginx;
$t->start_worker;

my $WABA = '102290129340398';
my $T = 1780000000;
my $tk = "wa:template:$WABA:order_update:en_US";

sub post_change {
    my ($field, $value, $time) = @_;
    is $t->post(change_body($field, $value, $time))->{status}, 200,
        "$field " . ($value->{event} // '') . ' posted';
}

sub settle { ok $t->wait_for(sub { $t->drained }), 'worker caught up' }

sub template_event {
    my ($event, $time, %extra) = @_;
    post_change('message_template_status_update', {
        event => $event, message_template_id => 1234567890123456,
        message_template_name => 'order_update',
        message_template_language => 'en_US',
        message_template_category => 'UTILITY',
        reason => undef, %extra }, $time);
}

sub alerts {
    return map { $_->{message} } $t->stream_events('wa:alerts');
}

template_event('APPROVED', $T);
settle();
my $h = $t->hash($tk);
is $h->{status}, 'APPROVED', 'approved';
is $h->{template_id}, '1234567890123456', 'id kept whole';
is $h->{category}, 'UTILITY', 'category';

post_change('message_template_quality_update', {
    previous_quality_score => 'GREEN', new_quality_score => 'RED',
    message_template_id => 1234567890123456,
    message_template_name => 'order_update',
    message_template_language => 'en_US' }, $T + 50);
template_event('PAUSED', $T + 100,
               other_info => { title => 'FIRST_PAUSE',
                               description => 'paused 3 hours' });
settle();
$h = $t->hash($tk);
is $h->{quality_score}, 'RED', 'quality RED';
is $h->{status}, 'PAUSED', 'paused';
is $h->{pause_count}, 1, 'first pause';
is $h->{paused_until}, $T + 100 + 3 * 3600, 'for 3 hours';
my @a = alerts();
ok((grep { /order_update.*quality dropped from GREEN to RED/ } @a),
   'alert: quality drop');
ok((grep { /order_update.*paused \(first pause\)/ } @a), 'alert: paused');

template_event('REINSTATED', $T + 100 + 3 * 3600);
settle();
$h = $t->hash($tk);
is $h->{status}, 'REINSTATED', 'reinstated';
ok !exists $h->{paused_until}, 'no longer paused';

template_event('PAUSED', $T + 20000);
settle();
$h = $t->hash($tk);
is $h->{pause_count}, 2, 'second pause';
is $h->{paused_until}, $T + 20000 + 6 * 3600, 'for 6 hours';

template_event('DISABLED', $T + 50000);
# a late, older event does not undo it
template_event('APPROVED', $T + 10);
settle();
$h = $t->hash($tk);
is $h->{status}, 'DISABLED', 'disabled, and a late APPROVED ignored';
is $h->{disabled_at}, $T + 50000, 'when';
ok((grep { /order_update.*disabled/ } alerts()), 'alert: disabled');

post_change('template_category_update', {
    message_template_id => 1234567890123456,
    message_template_name => 'order_update',
    message_template_language => 'en_US',
    previous_category => 'UTILITY', new_category => 'MARKETING' }, $T + 60000);
settle();
is $t->hash($tk)->{category}, 'MARKETING', 'category change';

# phone number quality, older generation
my $nk = 'wa:number:15550783881';
my $q = sub {
    my ($event, $time, %o) = @_;
    post_change('phone_number_quality_update', {
        display_phone_number => '15550783881', event => $event, %o }, $time);
};
$q->('ONBOARDING', $T, current_limit => 'TIER_10K');
settle();
$h = $t->hash($nk);
is $h->{status}, 'CONNECTED', 'onboarded: connected';
is $h->{messaging_limit}, 'TIER_10K', 'tier 10K';
is $h->{messaging_limit_users}, 10000, '10000 users';

$q->('FLAGGED', $T + 100, current_limit => 'TIER_10K');
settle();
$h = $t->hash($nk);
is $h->{status}, 'FLAGGED', 'flagged';
is $h->{quality_rating}, 'RED', 'quality RED';
is $h->{flagged_at}, $T + 100, 'when';
ok((grep { /number 15550783881 flagged/ } alerts()), 'alert: flagged');

$q->('DOWNGRADE', $T + 7 * 86400, current_limit => 'TIER_1K',
     old_limit => 'TIER_10K');
settle();
$h = $t->hash($nk);
is $h->{messaging_limit}, 'TIER_1K', 'downgraded to the old 1K tier';
is $h->{messaging_limit_users}, 1000, '1000 users';
is $h->{status}, 'CONNECTED', 'connected again at the lower tier';
ok((grep { /messaging limit lowered: TIER_10K -> TIER_1K/ } alerts()),
   'alert: tier lowered');

# a late FLAGGED (older than what we know) does not flag it again
$q->('FLAGGED', $T + 200);
settle();
is $t->hash($nk)->{status}, 'CONNECTED', 'late event kept out';

# newer generation
$q->('THROUGHPUT_UPGRADE', $T + 8 * 86400);
$q->('UPGRADE', $T + 9 * 86400, current_limit => 'TIER_2K',
     old_limit => 'TIER_1K');
settle();
$h = $t->hash($nk);
is $h->{throughput_level}, 'HIGH', 'throughput upgraded';
is $h->{messaging_limit}, 'TIER_2K', 'tier 2K';
is $h->{messaging_limit_users}, 2000, '2000 users';
is $h->{last_event}, 'UPGRADE', 'last event';
ok((grep { /messaging limit raised: TIER_1K -> TIER_2K/ } alerts()),
   'alert: tier raised');

post_change('business_capability_update', {
    max_daily_conversation_per_phone => -1,
    max_daily_conversations_per_business => 'TIER_100K',
    max_phone_numbers_per_waba => 25 }, $T + 10 * 86400);
settle();
$h = $t->hash("wa:waba:$WABA");
is $h->{max_daily_conversations_per_business}, 'TIER_100K', 'capability';
is $h->{max_phone_numbers_per_waba}, 25, 'numbers per WABA';

# account: restriction and ban, from the fixtures, for this test's account
my %fx = map { ("$_->[0]/$_->[1]" => $_->[2]) } $t->fixtures;
for my $case ('account_update.json/account_restriction',
              'account_update.json/account_disabled') {
    my $data = $fx{$case} or die "no fixture $case";
    $_->{id} = $WABA for @{ $data->{entry} };
    my $body = WaTest::meta_json($data);
    is $t->post($body)->{status}, 200, "$case posted";
}
settle();
$h = $t->hash("wa:waba:$WABA");
is $h->{restricted}, 1, 'restricted';
ok((grep { /restricted/ } alerts()), 'alert: restriction');
ok((grep { /ban state/ } alerts()), 'alert: ban');

my ($first) = $t->stream_events('wa:alerts');
ok $first->{severity} && $first->{subject} && $first->{event_id},
    'alerts carry severity, subject, event_id';

done_testing;
